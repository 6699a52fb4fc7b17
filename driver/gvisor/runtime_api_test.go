package gvisor_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/boxrun/boxrun"
	"github.com/boxrun/boxrun/boxapi"
	"github.com/boxrun/boxrun/client"
	"github.com/boxrun/boxrun/driver/gvisor"
	"github.com/boxrun/boxrun/httpapi"
)

// newHTTPManager is a Manager over a gVisor driver (rootless when the
// test runs rootless) served by the real HTTP server on host loopback, and
// a client of it.
func newHTTPManager(t testing.TB) (*boxrun.Manager, *client.Client, *gvisor.Driver) {
	t.Helper()
	d, _ := newDriver(t)
	m, err := openManager(t.TempDir(), d)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := httpapi.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); httpapi.New(m).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		m.Close()
	})
	c, err := client.New("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return m, c, d
}

// TestBoxRuntime_AgentState: GET /v1/boxes/{id}/runtime reports the
// agent of a running box as connected; when code in the box stops the
// agent, execs still run (through runsc exec) and the box reports
// fallback with the reason; a stopped box reports nothing; an unknown box
// is BOX_NOT_FOUND.
func TestBoxRuntime_AgentState(t *testing.T) {
	m, c, _ := newHTTPManager(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	box, err := c.Create(ctx, boxapi.BoxSpec{Image: "dir:" + busyboxRootfs(t), CPU: 1, MemoryMB: 256, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := c.BoxRuntime(ctx, box.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rt.BoxID != box.ID || rt.Driver != "gvisor" || rt.Details["agent"] != gvisor.AgentConnected {
		t.Fatalf("runtime of a fresh box: %+v", rt)
	}

	// The box's root stops its agent (SIGSTOP: it keeps its socket but
	// never answers).
	if e, err := m.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"sh", "-c", killAgent("STOP")}}, nil, nil); err != nil || e.Status != boxapi.ExecSucceeded {
		t.Fatalf("attack: %+v, %v", e, err)
	}
	time.Sleep(time.Second) // killAgent acts after 0.2 s
	var out strings.Builder
	e, err := c.Exec(ctx, box.ID, boxapi.ExecRequest{Cmd: []string{"echo", "still works"}}, &out, nil)
	if err != nil || e.Status != boxapi.ExecSucceeded || out.String() != "still works\n" {
		t.Fatalf("exec with a stopped agent: %+v, %v, %q", e, err, out.String())
	}
	rt, err = c.BoxRuntime(ctx, box.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Details["agent"] != gvisor.AgentFallback || rt.Details["agent_error"] == "" {
		t.Fatalf("runtime with a stopped agent: %+v", rt)
	}

	if _, err := c.Stop(ctx, box.ID); err != nil {
		t.Fatal(err)
	}
	if rt, err = c.BoxRuntime(ctx, box.ID); err != nil || len(rt.Details) != 0 {
		t.Fatalf("runtime of a stopped box: %+v, %v", rt, err)
	}
	_, err = c.BoxRuntime(ctx, "nope")
	var be *boxapi.Error
	if !errors.As(err, &be) || be.Code != boxapi.CodeBoxNotFound {
		t.Fatalf("runtime of an unknown box: %v", err)
	}
}
