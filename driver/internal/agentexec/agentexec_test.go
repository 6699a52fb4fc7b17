//go:build linux

package agentexec_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/boxrun/boxrun/agentproto"
	"github.com/boxrun/boxrun/agentproto/agentprototest"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/driver/internal/agentexec"
	"github.com/boxrun/boxrun/internal/boxagent"
	"github.com/boxrun/boxrun/sandbox"
	"github.com/hashicorp/yamux"
)

// theAgent is the one real in-box agent of this test process: its Reap
// collects every child of the process, so a second agent would steal
// the first one's exit statuses.
var theAgent = sync.OnceValue(func() *boxagent.Agent {
	a := boxagent.New(boxagent.Hooks{OutDir: func() string {
		if d := outDir.Load(); d != nil {
			return *d
		}
		return ""
	}})
	go a.Reap()
	return a
})

// outDir is where theAgent creates output sockets (see
// agentproto.Request.HostOut); nil: none.
var outDir atomic.Pointer[string]

// realAgent serves the real in-box agent over a pipe (the host's own
// files and processes stand in for a box's) and returns the adapter over
// the host side.
func realAgent(t *testing.T) (*agentexec.Agent, *atomic.Int32) {
	t.Helper()
	host, box := net.Pipe()
	go theAgent().Accept(box)
	c, err := agentproto.Handshake(context.Background(), host, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var broken atomic.Int32
	return &agentexec.Agent{Name: "test", Conn: c, Broken: func(error) { broken.Add(1) }}, &broken
}

func me() agentproto.User {
	return agentproto.User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
}

func run(t *testing.T, a *agentexec.Agent, spec sandbox.ProcessSpec) (*agentexec.Process, error) {
	t.Helper()
	req := agentexec.Request(spec, []string{"PATH=/usr/bin:/bin", "X=1"}, "/", me())
	return a.Start(context.Background(), req, spec, time.Minute)
}

// An exec through the adapter: exact stdout and stderr, env, stdin, the
// exit code; a refused command is ErrInvalid and nothing runs.
func TestExec(t *testing.T) {
	a, broken := realAgent(t)
	var out, errb bytes.Buffer
	p, err := run(t, a, sandbox.ProcessSpec{
		Cmd:   []string{"sh", "-c", `read l; echo "$l $X"; echo e >&2; exit 3`},
		Stdin: strings.NewReader("in\n"), Stdout: &out, Stderr: &errb,
	})
	if err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait()
	if err != nil || code != 3 || out.String() != "in 1\n" || errb.String() != "e\n" {
		t.Fatalf("code %d err %v out %q err %q", code, err, out.String(), errb.String())
	}
	if err := p.Resize(context.Background(), boxapi.TermSize{Rows: 5, Cols: 5}); !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("resize of a pipe exec: %v, want ErrInvalid", err)
	}
	if _, err := run(t, a, sandbox.ProcessSpec{Cmd: []string{"/no/such/program"}, Stdout: io.Discard}); !errors.Is(err, boxapi.ErrInvalid) {
		t.Fatalf("missing program: %v, want ErrInvalid", err)
	}
	if broken.Load() != 0 {
		t.Fatal("a well-behaved agent was reported broken")
	}
}

// Signal reaches the process group; a signal after the exit is not an
// error.
func TestSignal(t *testing.T) {
	a, _ := realAgent(t)
	p, err := run(t, a, sandbox.ProcessSpec{Cmd: []string{"sh", "-c", "sleep 300 & wait"}, Stdout: io.Discard, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(context.Background(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(); err != nil || code != 128+int(syscall.SIGKILL) {
		t.Fatalf("killed: code %d err %v", code, err)
	}
	if err := p.Signal(context.Background(), syscall.SIGTERM); err != nil {
		t.Fatalf("signal after exit: %v", err)
	}
}

// Copy in and out map the agent's answers to the boxapi kinds.
func TestCopy(t *testing.T) {
	a, _ := realAgent(t)
	ctx := context.Background()
	dir := t.TempDir()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	tw.Write([]byte("hi"))
	tw.Close()
	if err := a.CopyIn(ctx, dir, &tb); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "hi" {
		t.Fatalf("copied in: %q %v", b, err)
	}
	var out bytes.Buffer
	if err := a.CopyOut(ctx, filepath.Join(dir, "f"), &out); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&out)
	if h, err := tr.Next(); err != nil || h.Name != "f" {
		t.Fatalf("copied out: %v %v", h, err)
	}
	if err := a.CopyOut(ctx, filepath.Join(dir, "missing"), io.Discard); !errors.Is(err, boxapi.ErrNotFound) {
		t.Fatalf("missing source: %v, want ErrNotFound", err)
	}
	bad := bytes.NewReader(append([]byte("not a tar"), make([]byte, 1024)...))
	if err := a.CopyIn(ctx, dir, bad); !errors.Is(err, boxapi.ErrInvalid) && !errors.Is(err, boxapi.ErrRuntime) {
		t.Fatalf("bad tar: %v", err)
	}
}

// A hostile agent that answers an exec with an oversized frame: the
// exec fails with ErrRuntime, the connection is reported broken, and
// the host is not affected.
func TestHostileAgent(t *testing.T) {
	c := agentprototest.Dial(t, func(st *yamux.Stream) {
		agentproto.WriteJSON(st, agentproto.FrameResult, agentproto.Result{PID: 7})
		st.Write(agentprototest.RawFrame(agentproto.FrameStdout, agentproto.MaxPayload+1, nil))
	})
	var broken atomic.Int32
	a := &agentexec.Agent{Name: "test", Conn: c, Broken: func(err error) {
		if !errors.Is(err, agentproto.ErrProtocol) {
			t.Errorf("broken with %v, want ErrProtocol", err)
		}
		broken.Add(1)
	}}
	spec := sandbox.ProcessSpec{Cmd: []string{"x"}, Stdout: io.Discard, Stderr: io.Discard}
	p, err := a.Start(context.Background(), agentexec.Request(spec, nil, "/", me()), spec, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wait(); !errors.Is(err, boxapi.ErrRuntime) || !errors.Is(err, agentproto.ErrProtocol) {
		t.Fatalf("wait on a forged stream: %v, want ErrRuntime wrapping ErrProtocol", err)
	}
	if broken.Load() == 0 {
		t.Fatal("the forged stream was not reported broken")
	}
}
