package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/creack/pty"
)

// buildCLI builds the boxrun binary into a temp dir.
func buildCLI(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "boxrun")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// ptySession is the CLI running on a pseudo-terminal.
type ptySession struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func startOnPty(t *testing.T, bin string, args ...string) *ptySession {
	t.Helper()
	return startOnPtyEnv(t, nil, bin, args...)
}

func startOnPtyEnv(t *testing.T, env []string, bin string, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "TERM=xterm"), env...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	s := &ptySession{t: t, cmd: cmd, tty: tty, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		tty.Close()
	})
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *ptySession) typeLine(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.tty, line+"\r"); err != nil {
		s.t.Fatal(err)
	}
}

func (s *ptySession) waitOutput(want string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.output(), want) {
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q in terminal output:\n%s", want, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait returns the CLI's exit code.
func (s *ptySession) wait() int {
	s.t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.cmd.Wait() }()
	select {
	case err := <-errc:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		s.t.Fatalf("CLI did not exit; output:\n%s", s.output())
		return -1
	}
}

// TestCLI_Binary builds the CLI once and runs the tests that need the real
// binary: terminals on a pty, and auto-start with a gVisor-backed server.
func TestCLI_Binary(t *testing.T) {
	bin := buildCLI(t)
	t.Run("ShellOnPty", func(t *testing.T) { testShellOnPty(t, bin) })
	t.Run("AttachOnPty", func(t *testing.T) { testAttachOnPty(t, bin) })
	t.Run("Gvisor", func(t *testing.T) { testGvisor(t, bin) })
}

// testShellOnPty runs `boxrun shell` on a real pseudo-terminal, types
// commands and reads their output, then exits the shell with a code.
func testShellOnPty(t *testing.T, bin string) {
	s := newTestServer(t)
	sess := startOnPty(t, bin, "--url", s.url, "--autostart=false", "shell", "--name", "ptybox", "busybox")
	sess.waitOutput("Created box ptybox")
	sess.typeLine("echo hel''lo-from-pty; stty size")
	sess.waitOutput("hello-from-pty")
	sess.waitOutput("24 80")
	sess.typeLine("exit 7")
	if code := sess.wait(); code != 7 {
		t.Errorf("shell exit code %d, want 7; output:\n%s", code, sess.output())
	}
	if b, err := s.m.Get(context.Background(), "ptybox"); err != nil || b.Status != boxrun.StatusRunning {
		t.Errorf("box after shell: %+v, %v", b, err)
	}
}

// testAttachOnPty attaches to a running box on a pty and checks that a
// terminal resize (SIGWINCH) reaches the program.
func testAttachOnPty(t *testing.T, bin string) {
	s := newTestServer(t)
	if _, err := s.m.Create(context.Background(), boxrun.BoxSpec{Image: "busybox", Name: "att"}); err != nil {
		t.Fatal(err)
	}
	sess := startOnPty(t, bin, "--url", s.url, "--autostart=false", "attach", "att")
	sess.typeLine("echo ready''-1")
	sess.waitOutput("ready-1")
	if err := pty.Setsize(sess.tty, &pty.Winsize{Rows: 40, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	// The CLI gets SIGWINCH from the kernel and sends a resize frame.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(sess.output(), "40 132") {
		if time.Now().After(deadline) {
			t.Fatalf("resize not seen:\n%s", sess.output())
		}
		sess.typeLine("stty size")
		time.Sleep(200 * time.Millisecond)
	}
	sess.typeLine("exit")
	if code := sess.wait(); code != 0 {
		t.Errorf("attach exit code %d", code)
	}
}
